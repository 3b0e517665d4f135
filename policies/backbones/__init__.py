"""Networks shared by every policy: (B, H, Da) chunks in, same shape out, conditioned on (B, cond_dim)."""
