"""Searching the NB101 space: strategies as ask/tell (strategies), neighbourhoods (neighbourhood),
the query loop over a table of recorded accuracies (table), and real training as the oracle: one
trial (trials), a search of trials and its journal (trial_search), and the same on Ray Tune (ray_search).

The top layer: may import every other package of lib/.
"""
