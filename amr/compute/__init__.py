"""Forward-pass costs, the batch plan, zero-cost trimming and the FLOP ledger."""
