"""Style previews for the picker: the backend's preview PNGs through ``bpy.utils.previews``.

The monitor thread downloads them; only this module (main thread) hands them to Blender.
"""

from __future__ import annotations

import bpy
import bpy.utils.previews

NONE_ID = "NONE"
_collection = None
_items: list[tuple] = [(NONE_ID, "No styles yet", "Start the backend to see its style library", "QUESTION", 0)]
_version = -1


def update(snapshot) -> bool:
    """Rebuild the picker's items when the monitor has a new style list; True when something changed."""
    global _collection, _items, _version
    if snapshot is None or snapshot.styles is None or snapshot.styles_version == _version:
        return False
    if _collection is None:
        _collection = bpy.utils.previews.new()
    items = []
    for number, style in enumerate(s for s in snapshot.styles if isinstance(s, dict) and s.get("name")):
        name = style["name"]
        path = snapshot.previews.get(name)
        icon = 0
        if path:
            key = f"{name}:{path}"
            preview = _collection.get(key) or _collection.load(key, path, "IMAGE")
            icon = preview.icon_id
        kind, prompt = style.get("kind") or "style", style.get("prompt") or ""
        items.append((name, name, f"{kind}: {prompt}" if prompt else kind, icon, number))
    # Blender keeps pointers into the last returned list: it must stay referenced.
    _items = items or [(NONE_ID, "No styles", "The library is empty: train one", "QUESTION", 0)]
    _version = snapshot.styles_version
    return True


def enum_items() -> list[tuple]:
    return _items


def style_info(name: str, snapshot) -> dict | None:
    if snapshot is None or not snapshot.styles:
        return None
    return next((s for s in snapshot.styles if isinstance(s, dict) and s.get("name") == name), None)


def register():
    pass


def unregister():
    global _collection, _version
    if _collection is not None:
        bpy.utils.previews.remove(_collection)
    _collection, _version = None, -1
