"""A plain dict that refuses duplicate names, lists the valid ones on a miss, and builds an entry from its settings."""
import inspect


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

    def build(self, name: str, settings, **given):
        """``self[name](**given, ...)``, each other keyword the builder takes read from ``settings`` (a task's config):
        a component sees its own settings, never the whole config."""
        builder = self[name]
        own = [keyword for keyword in inspect.signature(builder).parameters if keyword not in given]
        missing = [keyword for keyword in own if not hasattr(settings, keyword)]
        if missing:
            raise TypeError(f"{self.kind} {name!r} needs the settings {missing}, which {type(settings).__name__} lacks")
        return builder(**given, **{keyword: getattr(settings, keyword) for keyword in own})
