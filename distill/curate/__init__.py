"""Curation: turn raw teacher traces into the SFT set, keeping every rejection with its reason."""
