from exhunt.cli import run

run()
