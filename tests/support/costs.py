"""A cost model for plan tests: FLOPs linear in rows, with a fixed per-call part (as XLA's counts have for the
optimizer update)."""


class LinearCosts:
    def train(self, n):
        return 1e5 + 3e4 * n

    def grad(self, n):
        return 2e4 * n

    def forward(self, n):
        return 1e4 * n

    def embed(self, n):
        return 9e3 * n
