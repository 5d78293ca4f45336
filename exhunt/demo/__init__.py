"""Bundled demo evidence: a realistic Exchange 2016 CU19 server collection with a planted
ProxyLogon chain, generated (never committed) so tests and ``make demo`` share one source."""

from exhunt.demo.generator import ATTACKER_IP, DemoSpec, generate

__all__ = ["ATTACKER_IP", "DemoSpec", "generate"]
