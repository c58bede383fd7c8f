"""The CPPN itself: its config and network (cppn), its coordinate and time inputs (coords) and how
strongly music moves it (reactivity). Imports the core and audio's feature names, nothing later.
"""
