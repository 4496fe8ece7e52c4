"""The students stage: supervised fine-tuning of student bases on curated teacher traces (TRL)."""
