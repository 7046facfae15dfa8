"""The Caller service: introduces people by asking the Greeter service for greetings."""
