"""tileservice: a map-tile service written against c2casgiutils 0.14 (a test fixture of the c2c workspace)."""
