"""`micromarketing fit`: the customer models fitted to a shop's own order history."""
