"""TRC²: thalamically routed cortical columns with a hippocampal store (Khadangi, arXiv 2602.22479)."""
