"""Research prototypes kept next to the product code; nothing here is part of the aecodec package."""
