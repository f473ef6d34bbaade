"""What a replay looked like, for people: daily series of its outputs (`timeline`), the
self-contained `report.html` (`html`), and two rule sets side by side (`compare`)."""
