"""The engine (`streams.engine`) and its two shells: `replay` and the live Faust worker."""

from streams.compiled import select

select()  # compiled engine modules or their source: decided before any of them is imported
