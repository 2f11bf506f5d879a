"""OpenRTB 2.6: the request and response objects, their validation, and their JSON form."""
