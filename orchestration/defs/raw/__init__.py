"""The raw tables `app/*`: the platform's, observed; materialized only by the generator."""
