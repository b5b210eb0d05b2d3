"""The ground floor: small helpers every app may use, importing no app of this project.

Encrypted model fields, the API's error handling and model validation, time-range filters, ids
from query strings, the target policy for addresses and paths, free loopback ports. The project
package (``eocortex_web``) is the top floor: settings and wiring, importing the apps.
"""
