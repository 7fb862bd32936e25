"""One module per op; each reads top to bottom like the technician's recipe, and a task op takes one
``OpContext`` (context.py): the task, its progress, the server, the storage node."""
