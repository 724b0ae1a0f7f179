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
