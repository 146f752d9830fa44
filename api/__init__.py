"""The HTTP layer: a thin FastAPI app over `ledger.service.Ledger`. No rules live here."""
