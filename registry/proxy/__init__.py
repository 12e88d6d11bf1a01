"""The pull-through cache: which upstream a repository name belongs to, and (to come) the
upstream client and the fill on a miss."""
