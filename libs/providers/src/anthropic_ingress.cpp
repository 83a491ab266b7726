// written by the provider work (issue 6)
