"""The performer of the CLI session in docs/cli-session.md: ``--performer shop:performer``.

Two actions: ``send_mail`` always works; ``charge`` fails while the card is
expired, so a payment blocks its queue until an operator steps in.
"""

from __future__ import annotations

import logging

from queuetopia_lite import Job, Performer

log = logging.getLogger("shop")


class Shop(Performer):
    """The shop's actions; a failed job is retried every 30 s (not 2, 3, 5... s)."""

    def backoff(self, job: Job) -> float:
        return 30.0


performer = Shop()


@performer.action("send_mail")
def send_mail(job: Job) -> None:
    log.info("mail sent to %s", job.params["to"])


@performer.action("charge")
def charge(job: Job) -> None:
    if job.params["card"] == "expired":
        raise RuntimeError(f"card declined for order {job.params['order']}: expired card")
    log.info("order %s charged", job.params["order"])
