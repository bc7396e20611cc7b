"""WebShop's colour normalisation of option values (WEBSHOP_SPEC §4.3, §4.8).

WebShop maps every option value, colour or not, to the first word of a fixed colour list that
occurs in it. This is why "standard" becomes "tan" and "lightweight" becomes "light": the test is
a plain substring test, not a word test. The reward depends on that behaviour, so we keep it.
"""

from __future__ import annotations

# WebShop's colour words, in WebShop's scan order. The order matters: the first hit wins, so
# "dark brown" -> "brown" (b... before d...) and "navy blue" -> "blue".
COLOR_WORDS: tuple[str, ...] = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure",
    "banana", "beige", "black", "blue", "blush", "bordeaux", "bronze", "brown", "burgundy",
    "camel", "camo", "caramel", "champagne", "charcoal", "cheetah", "chestnut", "chocolate",
    "christmas", "coffee", "cognac", "copper", "coral", "cranberry", "cream", "crystal",
    "dark", "denim",
    "eggplant", "elephant", "espresso",
    "fuchsia",
    "gold", "granite", "grape", "graphite", "grass", "gray", "green", "grey",
    "heather",
    "indigo", "ivory", "ivy",
    "khaki",
    "lavender", "lemon", "leopard", "light", "lilac", "lime",
    "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor",
    "mushroom", "mustard",
    "natural", "navy", "nude",
    "olive", "orange",
    "peach", "pewter", "pink", "plum", "purple",
    "rainbow", "red", "rose", "royal", "rust",
    "sand", "sapphire", "seashell", "silver", "skull", "slate", "steel", "stone", "stonewash",
    "sunflower",
    "tan", "taupe", "teal", "tiger", "turquoise",
    "violet",
    "walnut", "wheat", "white", "wine",
    "yellow",
)


def normalize_color(value: str) -> str:
    """Return the first colour word (in `COLOR_WORDS` order) found inside ``value``, else ``value``.

    A substring test, as in WebShop: "standard" -> "tan", "dark brown" -> "brown",
    "lightweight" -> "light", "x-large" -> "x-large". Case-sensitive: WebShop's option values are
    lowercased at load time, so a capitalised value is returned unchanged.
    """
    if not isinstance(value, str):
        raise TypeError(f"normalize_color expects a str option value, got {type(value).__name__}: {value!r}")
    for colour in COLOR_WORDS:
        if colour in value:
            return colour
    return value


def normalize_color_pair(name: str, value: str) -> str | tuple[str, str]:
    """WebShop's `normalize_color` applied to a synthetic goal option ``(name, value)`` pair.

    WebShop hands synthetic goal options to the colour normaliser as pairs, where ``in`` is a
    membership test: the pair becomes a colour word only if that word *equals* the name or the
    value ("navy" does, "navy blue" does not). Otherwise the pair comes back unchanged, and the
    fuzzy matcher later sees its ``str()`` form, e.g. "('size', 'x-large')".
    """
    pair = (name, value)
    for colour in COLOR_WORDS:
        if colour == name or colour == value:
            return colour
    return pair
