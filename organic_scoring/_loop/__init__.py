"""The scoring loop's private parts: when to run (trigger), one iteration, the engine
that runs iterations and owns their tasks, the statistics, and how hooks are called.
Nothing here is public; :class:`~organic_scoring.OrganicScoringBase` is the way in."""
