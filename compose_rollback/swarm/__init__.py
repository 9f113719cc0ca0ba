"""Docker Swarm: the stack file given to `docker stack deploy`, task views, adopting a stack."""
