"""The console: server-rendered pages for operators, reviewers and employees, one module
per area (frame and sign-in, overview, requests, review, investigations, keys, policies,
routes, members, audit, Navigator sources and questions, the playground) over one
templates folder. Every action a page offers is also in the admin API; the pages call the
same services on the same unit of work."""
