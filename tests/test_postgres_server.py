import sqlalchemy


def test_postgres_server_accepts_queries(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)

    with engine.connect() as connection:
        version = connection.exec_driver_sql("SHOW server_version").scalar_one()

    engine.dispose()
    assert version.startswith("15")
