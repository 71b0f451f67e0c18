"""A minimal Django project running django-hordak, for ``python -m bench ledger``."""
