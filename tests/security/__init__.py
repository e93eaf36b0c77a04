"""One module per finding of the security review (test_finding_NN_*.py):
each attacks the weakness the way a plugin author or a tenant would."""
