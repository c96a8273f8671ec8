"""A plain dict that refuses duplicate names and lists the valid ones on a miss."""


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def __setitem__(self, name, value):
        if name in self:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        super().__setitem__(name, value)

    def __missing__(self, name):
        raise KeyError(f"unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self))}")
