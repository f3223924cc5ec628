"""The console's gateway pages: overview, requests, review queue, investigations,
policies and routes. Server-rendered; every action is also in the admin API."""
