"""The Greeter service: greetings for one name, many names, several languages, or a chat."""
