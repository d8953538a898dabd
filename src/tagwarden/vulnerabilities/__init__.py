"""What a digest holds (its SBOM's packages) and which known vulnerabilities hit them (OSV data
read from disk), with the gates and recalls that follow from it."""
