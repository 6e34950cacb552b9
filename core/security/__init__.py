"""What a tenant may make the engine do beyond its own flows: read operator-granted secrets, reach
allowed addresses. Grants (``grants``), the secret references of a flow (``secrets``), the one URL policy
(``urls``) and the services a tenant's plugins get (``scope``)."""
