from migrations.env_common import run_migrations_online

run_migrations_online()
