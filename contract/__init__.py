"""The vocabulary the boot client (``imager``) and the server (``server_stub``) share.

A leaf package: it imports only the standard library, and neither side's code. Both
sides import it; the boot images carry it next to ``imager``. Everything here is a
fact about the wire (names of types and states, error codes, the inventory's shape,
the manifest's stream order, udpcast's command lines, the image version rule), not
behaviour of either side.
"""
