"""Mail leaving today: inbox rules and mailbox settings that forward outside the organisation, and
rules that hide mail from the owner. Read from ``Get-InboxRule`` / ``Get-Mailbox`` exports (rows of
``kind`` ``inbox_rule`` / ``mailbox``, see ``artifacts.cmdlet_exports``); no text-log rows.

Outside means: the address's domain is none of ``org_domains`` (``detections.orgdomains``) nor a
subdomain of one. When no domain is known, every address counts as outside at medium confidence.
"""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.orgdomains import ADDRESS_RE, ORG_KNOWN, outside_org

MS_RULES = "https://learn.microsoft.com/en-us/defender-office-365/detect-and-remediate-outlook-rules-forms-attack"
MS_FORWARDING = "https://learn.microsoft.com/en-us/exchange/recipients/user-mailboxes/email-forwarding"
COLUMNS = "host, path, source, ts, line, record_id"


def prop(name: str) -> str:
    """One property of the export row (a string, or a JSON list written as text)."""
    return f"json_extract_string(fields, '$.{name}')"


FORWARD_PROPS = ("ForwardTo", "ForwardAsAttachmentTo", "RedirectTo")
FORWARD_TEXT = "lower(concat_ws(' ', " + ", ".join(prop(p) for p in FORWARD_PROPS) + "))"
# a multi-valued column Export-Csv wrote as its type name: the recipients are not in the export
LOST = "regexp_matches(" + FORWARD_TEXT + ", '(system\\.collections|multivaluedproperty)')"
OBSCURE_FOLDERS = "(rss (feeds|subscriptions)|conversation history|archive|junk e-?mail|deleted items|notes)"


class InboxRuleForwarding(SqlCheck):
    id = "mailflow.inbox_rule_forwarding"
    event_literals = ()  # reads cmdlet-export rows, no Windows event
    title = "Inbox rule forwarding or redirecting mail outside the organisation"
    severity = "high"
    description = (
        "A Get-InboxRule export holds a rule whose ForwardTo, ForwardAsAttachmentTo or RedirectTo names an "
        "address outside the organisation's domains: every matching message leaves today. Attackers add "
        "such rules after taking over a mailbox (ProxyToken, ProxyLogon, phished credentials). Medium "
        "confidence when the organisation's domains are unknown; low when Export-Csv wrote the recipients "
        "as a type name (the rule forwards, to whom is not in the export)."
    )
    attack = ("T1114.003",)
    references = (MS_RULES,)
    remediation = (
        "Confirm with the mailbox owner; remove rules they did not create (Remove-InboxRule) after saving "
        "them (Get-InboxRule -Mailbox <owner> | Format-List *).",
        "Treat the forwarded mail as disclosed; find when the rule appeared (mailbox audit log, ECP logs) "
        "and how the account was taken over; reset its password and sessions.",
    )
    prefilter = ()
    gate = "kind = 'inbox_rule'"
    sql = f"""
        WITH r AS (
            SELECT {COLUMNS}, anchor_mailbox, message AS rule, {FORWARD_TEXT} AS targets, {LOST} AS lost
            FROM events WHERE kind = 'inbox_rule'
        ), a AS (
            SELECT *, unnest(CASE WHEN lost THEN [''] ELSE regexp_extract_all(targets, '{ADDRESS_RE}') END) AS address
            FROM r
        )
        SELECT {COLUMNS},
               coalesce(anchor_mailbox, '?') || ' -> ' || CASE WHEN lost THEN '(recipients not exported)'
                                                         ELSE address END AS key,
               concat_ws(' ', 'mailbox=' || anchor_mailbox, 'rule=' || rule, 'to=' || targets) AS excerpt,
               CASE WHEN lost THEN 'low' WHEN {ORG_KNOWN} THEN 'high' ELSE 'medium' END AS confidence,
               nullif(address, '') AS ioc_email
        FROM a
        WHERE lost OR {outside_org('address')}
    """


class MailboxForwarding(SqlCheck):
    id = "mailflow.mailbox_forwarding"
    event_literals = ()  # reads cmdlet-export rows, no Windows event
    title = "Mailbox forwarding outside the organisation"
    severity = "high"
    description = (
        "A Get-Mailbox export shows ForwardingSmtpAddress set to an address outside the organisation's "
        "domains (with DeliverToMailboxAndForward the owner still sees the mail and notices nothing). "
        "ForwardingAddress names a directory recipient: reported at low confidence, because a mail "
        "contact there can point anywhere."
    )
    attack = ("T1114.003",)
    references = (MS_FORWARDING,)
    remediation = (
        "Confirm with the mailbox owner and the administrators; clear the forwarding (Set-Mailbox "
        "-ForwardingSmtpAddress $null -ForwardingAddress $null) if nobody set it on purpose.",
        "Treat the forwarded mail as disclosed and find who changed the mailbox (admin audit log).",
    )
    prefilter = ()
    gate = "kind = 'mailbox'"
    sql = f"""
        WITH m AS (
            SELECT {COLUMNS}, anchor_mailbox,
                   regexp_extract(lower(coalesce({prop('ForwardingSmtpAddress')}, '')), '{ADDRESS_RE}') AS smtp,
                   nullif(nullif({prop('ForwardingAddress')}, ''), 'null') AS recipient,
                   lower(coalesce({prop('DeliverToMailboxAndForward')}, '')) = 'true' AS keep_copy
            FROM events WHERE kind = 'mailbox'
        )
        SELECT {COLUMNS},
               coalesce(anchor_mailbox, '?') || ' -> ' || CASE WHEN smtp <> '' THEN smtp ELSE recipient END AS key,
               concat_ws(' ', 'mailbox=' || anchor_mailbox, 'ForwardingSmtpAddress=' || nullif(smtp, ''),
                         'ForwardingAddress=' || recipient, 'DeliverToMailboxAndForward=' || keep_copy) AS excerpt,
               CASE WHEN smtp = '' THEN 'low' WHEN {ORG_KNOWN} THEN 'high' ELSE 'medium' END AS confidence,
               nullif(smtp, '') AS ioc_email
        FROM m
        WHERE (smtp <> '' AND {outside_org('smtp')}) OR (smtp = '' AND recipient IS NOT NULL)
    """


class InboxRuleHiding(SqlCheck):
    id = "mailflow.inbox_rule_hiding"
    event_literals = ()  # reads cmdlet-export rows, no Windows event
    title = "Inbox rule that hides mail from its owner"
    severity = "medium"
    description = (
        "A rule that deletes messages or moves them to a folder the owner rarely opens (RSS Feeds, "
        "Conversation History, Archive, Deleted Items...), or a rule with no real name: attackers hide "
        "replies and warnings this way while they use the mailbox. Medium confidence when the rule also "
        "has a blank or punctuation-only name, low otherwise (users make such rules too)."
    )
    attack = ("T1564.008",)
    references = (MS_RULES,)
    remediation = (
        "Confirm with the mailbox owner; remove rules they did not create after saving them "
        "(Get-InboxRule -Mailbox <owner> -IncludeHidden | Format-List *).",
    )
    prefilter = ()
    gate = "kind = 'inbox_rule'"
    sql = f"""
        WITH r AS (
            SELECT {COLUMNS}, anchor_mailbox, coalesce(message, '') AS rule,
                   lower(coalesce({prop('DeleteMessage')}, '')) = 'true' AS deletes,
                   lower(coalesce({prop('MoveToFolder')}, '')) AS folder,
                   NOT regexp_matches(coalesce(message, ''), '[A-Za-z0-9]') AS nameless
            FROM events WHERE kind = 'inbox_rule'
        )
        SELECT {COLUMNS}, coalesce(anchor_mailbox, '?') || ' rule ' || rule AS key,
               concat_ws(' ', 'mailbox=' || anchor_mailbox, 'rule=' || rule, CASE WHEN deletes THEN 'deletes' END,
                         'move to=' || nullif(folder, '')) AS excerpt,
               CASE WHEN nameless THEN 'medium' ELSE 'low' END AS confidence
        FROM r
        WHERE deletes OR regexp_matches(folder, '(^|[\\\\:/ ]){OBSCURE_FOLDERS}$') OR (nameless AND folder <> '')
    """
