"""``exhunt probe``: a safe, non-intrusive remote check of Exchange servers, one or thousands.

targets.py parses what to probe, fingerprint.py finds the build, checks/ hold one module per remote
check (each documents exactly what it sends and why that is safe), runner.py sends the requests
with aiohttp under concurrency/rate/time/body limits (aiohttp, not httpx: measured ~1 s vs 6.6-41 s
for 1,000 hosts x 4 requests, httpx's pool collapses at high concurrency), output.py streams JSON
lines, resumes from them and turns the results into the findings document.
"""
