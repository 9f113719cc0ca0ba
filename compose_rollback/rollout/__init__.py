"""How the containers of a revision are replaced: the rollout seam.

``deploy`` is the transaction (pin -> record -> roll out -> gate -> commit | roll back); this
package is the "roll out": ``config`` reads ``deploy.update_config``/``rollback_config``,
``plan`` turns the running containers and the revision into steps, ``stop_first`` and
``start_first`` carry out one step each, and ``orchestrator`` runs the plan behind the
``Orchestrator`` seam another orchestrator (Swarm) can implement.
"""
