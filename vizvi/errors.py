"""The one exception type vizvi raises for anything a user chose or supplied."""


class ConfigError(ValueError):
    """A user-facing configuration or input error.

    ``argument`` names the setting at fault (a CLI flag name without dashes, such as ``lr`` or
    ``family``), so the CLI and the dashboard can point at the exact control.
    """

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument
        self.message = message

    def __str__(self) -> str:
        return f"{self.argument}: {self.message}"


def parse_choice(enum_cls, value: str, argument: str, noun: str):
    """``enum_cls(value)``, or a ConfigError on ``argument`` listing every choice."""
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(e.value for e in enum_cls)
        raise ConfigError(argument, f"unknown {noun} {value!r}; choose one of: {choices}") from None
