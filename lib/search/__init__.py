"""Searching the NB101 space. Strategies as ask/tell (ask_tell; by name in strategies: model_free,
with_predictor) over a pool and its neighbourhoods (neighbourhood); the query loop over a table of
recorded accuracies (table) and the report of searches (report); real training as the oracle: one trial
(trials), a search of trials and its journal (trial_search), the same on Ray Tune (ray_search, its
searcher ray_searcher), and its flags checked before the first trial (search_flags).

The top layer: may import every other package of lib/.
"""
