"""Detections over the case store: native checks, Sigma, YARA, IOCs, build -> CVE."""
