"""The lab's ``onedb``: OpenNebula 3.x's database tool, acting on the simulator's SQLite DB.

Run it as ``python -m upgrader.lab.onedb`` (see ``__main__``). The migrators in
``to34`` and ``to36`` rewrite the stored bodies the way the Ruby files of
``src/onedb/`` (release-3.6.0) do; ``chain`` strings them together.
"""
