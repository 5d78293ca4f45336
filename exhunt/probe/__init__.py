"""``exhunt probe``: a safe, non-intrusive remote check of Exchange servers, one or thousands.

targets.py parses what to probe, fingerprint.py finds the build, checks/ hold one module per remote
check (each documents exactly what it sends and why that is safe), runner.py sends the requests
under concurrency/rate/time/body limits through http1.py, a small HTTP/1.1 client (an asyncio
protocol and llhttp: a sweep takes ~0.4x the CPU it took with aiohttp's ClientSession, which in
turn beat httpx, whose pool collapses at high concurrency), output.py streams JSON lines, resumes from
them and turns the results into the findings document.
"""
