"""Audio CPPN Blender add-on (standard library + bpy only; talks to the backend over HTTP)."""
