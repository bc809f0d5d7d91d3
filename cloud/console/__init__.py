"""The operations centre's web console: server-rendered pages over the cloud's own queries.

`router` is what cloud.app includes (its router registry names this package).
"""

from cloud.console.router import router

__all__ = ["router"]
