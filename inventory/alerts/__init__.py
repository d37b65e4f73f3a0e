"""Alerts: rules turn a run's events into outbox rows; the dispatcher delivers them.

- :mod:`inventory.alerts.rules`: the set-based INSERT ... SELECT that writes outbox rows in
  the run's merge transaction, and source-health evaluation;
- :mod:`inventory.alerts.payload`: the JSON document every channel renders from;
- :mod:`inventory.alerts.channels`: webhook, Slack, email and log senders;
- :mod:`inventory.alerts.dispatcher`: claims due rows, sends, records attempts, retries.

See docs/alerts.md.
"""
