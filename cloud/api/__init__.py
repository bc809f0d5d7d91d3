"""HTTP API routers, one per concern; cloud.app includes them."""
