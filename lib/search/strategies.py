"""Every search strategy by name, as ask/tell (lib/search/ask_tell.py).

    from lib.search.strategies import STRATEGIES
    s = STRATEGIES["re"](pool, seed=0)                   # predictor strategies also take train=...

- random: uniform over the cells not yet queried.
- re: regularised evolution (Real et al. 2019): population 50, tournaments of 10, the oldest dies;
  NB101's mutation (lib/search/neighbourhood).
- ls: local search (White et al. 2021): from the best of 10 random cells, query the current cell's
  whole neighbourhood, move to the best cell found, restart at random at a local optimum.
- bananas: BANANAS (White et al. 2021): 10 random cells; then an ensemble fitted on every label,
  200 candidates around the top 5, independent Thompson sampling picks 10 before the next fit.
- npenas: NPENAS (Wei et al. 2022): as bananas, the candidates ranked by the predicted mean.
- guided: predictor-guided search (Neural Predictor) with a local step: n0 random cells; a fit on twice
  as many labels as the last ranking ranks every unqueried cell of the pool and keeps a shortlist of
  the best, the fits between score only the shortlist and the incumbent's neighbours; the first batch
  (per_round cells) is the best predicted, each later one (fewer cells) the best predicted neighbours
  of the incumbent first, then the best predicted of the rest.
- bananas, npenas and guided refit their predictor from the previous round's weights (a short warm
  fit), not from scratch (lib/search/with_predictor.py).
- sh: successive halving (eta 3) over NB101's epochs 4, 12, 36, 108: 27 random cells for 4 epochs,
  the best third goes on to the next epochs, 1 reaches 108; repeated.
- hyperband: Hyperband (Li et al. 2018) on the same epochs: brackets of 27 cells for 4 epochs, 12 for
  12, 6 for 36 and 4 for 108, in turn.
Departures from the reference implementations: docs/search.md.
"""

from __future__ import annotations

from lib.search.model_free import Hyperband, LocalSearch, RandomSearch, RegularizedEvolution, SuccessiveHalving
from lib.search.with_predictor import NPENAS, Bananas, Guided

STRATEGIES = {
    cls.name: cls
    for cls in (RandomSearch, RegularizedEvolution, LocalSearch, Bananas, NPENAS, Guided, SuccessiveHalving, Hyperband)
}
PREDICTOR_STRATEGIES = ("bananas", "npenas", "guided")
WALKS = ("re", "ls", "bananas", "npenas", "guided")  # the strategies that move through the neighbourhood
