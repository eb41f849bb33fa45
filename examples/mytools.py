"""A user's toolset, exactly as they would write it: plain functions, type hints, docstrings.

`sc tools examples/mytools.py` shows what sc sees in it.
"""


def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit.

    Args:
        celsius: The temperature in degrees Celsius.
    """
    return celsius * 9 / 5 + 32


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: Any text; words are separated by white space.
    """
    return len(text.split())
