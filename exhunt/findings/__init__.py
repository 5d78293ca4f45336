"""The frozen assessment document: findings, hosts, coverage. Reports render only this."""
