"""Click-through-rate features and the model artifact as the bidder scores them. Training writes what
these modules read and hashes rows with the same functions, so it imports them; they never import
training."""
