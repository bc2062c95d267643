"""One file per algorithm family; each composes the pure estimators and losses."""
